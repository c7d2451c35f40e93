# A fleet in waves: the same four simulated clusters as the quickstart (K3s at the edge,
# GKE, EKS and AKS), upgraded to 1.31 in three waves. The edge cluster is the canary; the
# shop (GKE) follows once the canary has run at its new version for an hour; the two
# production clusters follow the shop after another hour, one at a time.
#
#   kup plan examples/fleet                        # the waves and what each waits for
#   kup apply -auto-approve examples/fleet         # runs the canary, then stops: "wave
#                                                  # staging may start at …" (exit 0)
#   kup apply -auto-approve examples/fleet         # later (a scheduled pipeline): goes on
#   kup apply -auto-approve -wait examples/fleet   # or stay until every wave is done
#
# Soaks run on the simulated clock (600 simulated seconds per real second), so an hour here
# is six real seconds. The simulated world is the quickstart's: it lives in .kup/sim/ here
# (a copy of ../quickstart/world.hcl, which stays untouched).

variable "target" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor to run everywhere"
}

provider "eks" {
  region   = "eu-west-1"
  simulate = true
  world    = "../quickstart/world.hcl"
}

cluster "prod" {
  provider = "eks"
  name     = "prod-eu"
  version  = var.target

  addon "coredns"    { version = "compatible" }
  addon "kube-proxy" { version = "compatible" }
  addon "vpc-cni"    { version = "compatible" }

  node_group "general" {
    version         = var.target
    strategy        = "rolling"
    max_unavailable = "25%"
  }

  # Replaced blue/green: a new group at the target version takes the pods, the old one
  # is deleted after the soak.
  node_group "payments" {
    version         = var.target
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak = "10m"
    }
    drain {
      timeout = "5m"
    }
  }
}

provider "gke" {
  project  = "shop-prod"
  location = "europe-west1-b"
  simulate = true
  world    = "../quickstart/world.hcl"
}

cluster "shop" {
  provider = "gke"
  version  = var.target

  node_group "default" {
    version         = var.target
    max_unavailable = 0
    max_surge       = 1
  }
}

provider "aks" {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-checkout"
  simulate        = true
  world           = "../quickstart/world.hcl"
}

cluster "checkout" {
  provider = "aks"
  version  = var.target

  # AKS System pools surge only (maxUnavailable is not allowed on them).
  node_group "system" {
    version         = var.target
    max_unavailable = 0
    max_surge       = 1
  }

  node_group "apps" {
    version         = var.target
    max_unavailable = 0
    max_surge       = "34%"
    drain {
      timeout = "10m"
    }
  }
}

provider "k3s" {
  simulate = true
  world    = "../quickstart/world.hcl"
}

# K3s has no cloud API: kup writes system-upgrade-controller Plans, one minor per round,
# servers first, agents after them (gated by the Plan's prepare step).
cluster "edge" {
  provider = "k3s"
  version  = var.target          # the newest 1.31 patch the channel server offers

  node_group "servers" {         # the control-plane nodes, one at a time
    max_unavailable = 1
  }
  node_group "agents" {          # every other node
    max_unavailable = 1
    drain {
      timeout = "10m"
    }
  }
}

rollout "q4-upgrade" {
  wave "canary" {
    clusters = ["edge"]
  }
  wave "staging" {
    clusters = ["shop"]
    after    = ["canary"]
    soak     = "1h"
  }
  wave "prod" {
    clusters     = ["prod", "checkout"]
    after        = ["staging"]
    soak         = "1h"
    max_parallel = 1
  }
}
