# A real K3s fleet edge site: 3 servers and a pool of agents, upgraded through the
# system-upgrade-controller already running in the cluster. Install it first if needed:
#   kubectl apply -f https://github.com/rancher/system-upgrade-controller/releases/latest/download/crd.yaml \
#                 -f https://github.com/rancher/system-upgrade-controller/releases/latest/download/system-upgrade-controller.yaml
# Then: kup plan examples/k3s/production, and kup apply on merge.

variable "channel" {
  type        = string
  default     = "stable"
  description = "K3s release channel the site follows (resolved to an exact release at plan time)"
}

provider "k3s" {
  # channel_server = "https://update.k3s.io/v1-release/channels"   # the default
  # versions       = ["v1.30.9+k3s1", "v1.31.4+k3s1"]               # air-gapped sites
}

cluster "edge" {
  kubeconfig = "~/.kube/edge.yaml"
  context    = "edge"
  channel    = var.channel
  namespace  = "system-upgrade"

  node_group "servers" {
    max_unavailable = 1
  }

  node_group "agents" {
    max_unavailable = "25%"
    batch_soak      = "2m"
    timeout         = "3h"
    drain {
      timeout                      = "10m"
      delete_emptydir_data         = true
      skip_wait_for_delete_timeout = "60s"
    }
    window {
      days      = ["saturday", "sunday"]
      start     = "01:00"
      end       = "05:00"
      time_zone = "UTC"
    }
  }
}
