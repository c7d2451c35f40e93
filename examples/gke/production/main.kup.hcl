# Upgrade a real GKE cluster. Credentials: Application Default Credentials
# (`gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the
# metadata server).
#
#   kup plan -out upgrade.kupplan examples/gke/production
#   kup apply upgrade.kupplan

variable "target" {
  type    = string
  default = "1.31"
}

provider "gke" {
  project  = "my-project"
  location = "europe-west1"
}

cluster "prod" {
  name    = "prod-eu"
  version = var.target

  node_group "default-pool" {
    version         = var.target
    max_unavailable = 0
    max_surge       = 2
  }

  node_group "batch" {
    version         = var.target
    max_unavailable = 1
    # GKE drains these nodes itself: respect PDBs for up to 20 minutes, 60 s grace.
    drain {
      timeout      = "20m"
      grace_period = "60s"
    }
  }

  # GKE's native blue/green upgrade, rolled back with nodePools.rollback on failure or
  # `kup apply -rollback`.
  node_group "checkout" {
    version         = var.target
    strategy        = "blue_green"
    max_unavailable = "25%"
    blue_green {
      batch_soak                = "2m"
      soak                      = "2h"
      complete_when_healthy_for = "20m"
    }
  }
}
