# A bare-metal kubeadm cluster: three control-plane hosts and two worker pools, upgraded
# over SSH with the procedure of the kubeadm documentation, one minor per round. kup uses
# your OpenSSH client, so ~/.ssh/config (aliases, ProxyJump), ssh-agent and known_hosts
# apply; host keys are always verified. The kubeconfig is a copy of the first control-plane
# host's /etc/kubernetes/admin.conf: kup drains, uncordons and watches nodes through it.
#
#   kup plan examples/kubeadm          # reads the cluster; needs no SSH
#   kup apply examples/kubeadm         # runs the upgrade; every command lands in the journal

variable "target" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor (the newest patch pkgs.k8s.io offers), or an exact release"
}

provider "kubeadm" {}

cluster "lab" {
  kubeconfig = "~/.kube/lab.conf"
  version    = var.target

  ssh {
    user        = "ops"
    private_key = "~/.ssh/id_ed25519"
    port        = 22
    sudo        = true # every command runs through `sudo -n`
  }

  # The first host runs `kubeadm upgrade apply`; the others `kubeadm upgrade node`, one
  # at a time.
  control_plane {
    hosts = ["cp1.lab", "cp2.lab", "cp3.lab"]
  }

  etcd_graceful_restart = true  # stop kube-apiserver gracefully before etcd moves
  certificate_renewal   = true  # kubeadm's default

  # Runs on cp1.lab after `kubeadm upgrade apply`, as an argument list (no shell).
  cni_upgrade {
    command = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", "/etc/kubernetes/cni/calico.yaml"]
  }

  node_group "workers" {
    hosts           = ["w1.lab", "w2.lab", "w3.lab", "w4.lab"]
    max_unavailable = 2
    drain {
      timeout              = "10m"
      delete_emptydir_data = true
    }
  }

  # Hosts can also be picked from the cluster's Node objects (kup then connects to the
  # Node's name).
  node_group "gpu" {
    node_selector   = "pool=gpu"
    max_unavailable = 1
  }
}
