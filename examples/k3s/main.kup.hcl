# A K3s cluster upgraded from 1.29 to 1.31 through system-upgrade-controller. kup writes
# one Plan per node group (kup-servers, kup-agents), one minor per round: servers first,
# then the agents, gated on the servers by the Plan's prepare step. `simulate = true`
# runs it against kup's simulator (world.hcl); for a real cluster drop simulate/world and
# set kubeconfig on the cluster.

provider "k3s" {
  simulate = true
  world    = "world.hcl"
}

cluster "edge" {
  version   = "v1.31.4+k3s1"   # or: channel = "stable"
  namespace = "system-upgrade"

  node_group "servers" {       # default selector: control-plane nodes
    max_unavailable = 1
  }

  node_group "agents" {        # default selector: nodes without the control-plane role
    max_unavailable = "40%"
    drain {
      timeout              = "10m"
      delete_emptydir_data = true
    }
  }
}
