# The simulated K3s cluster behind examples/k3s: 3 servers and 5 agents at v1.29.8+k3s1,
# system-upgrade-controller installed, and a channel server that knows the newest patch
# of each minor (what https://update.k3s.io/v1-release/channels serves for real).
k3s_cluster "edge" {
  distribution = "k3s"
  version      = "v1.29.8+k3s1"
  servers      = 3
  agents       = 5

  suc {
    installed = true
    namespace = "system-upgrade"
  }

  channel_server {
    channels = {
      "v1.29" = "v1.29.12+k3s1"
      "v1.30" = "v1.30.9+k3s1"
      "v1.31" = "v1.31.4+k3s1"
      "v1.32" = "v1.32.1+k3s1"
      stable  = "v1.31.4+k3s1"
      latest  = "v1.32.1+k3s1"
    }
  }

  workload "shop" {
    namespace = "shop"
    replicas  = 4
    cpu       = "200m"
    memory    = "256Mi"
    pdb {
      min_available = 3
    }
  }
}
