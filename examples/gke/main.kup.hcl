# GKE against kup's simulator: the same google-cloud-container-v1 client kup uses with
# Google Cloud, pointed at an in-process simulator of the GKE REST API.
#
#   kup apply -auto-approve examples/gke
#
# production/ is the same upgrade written for a real project.

provider "gke" {
  project  = "shop-prod"
  location = "europe-west1-b"
  simulate = true
  world    = "world.hcl"
}

cluster "shop" {
  name    = "shop"
  version = "1.31"

  # GKE surge upgrade: new nodes first, old ones drained through PodDisruptionBudgets.
  node_group "default" {
    version         = "1.31"
    max_unavailable = 0
    max_surge       = 1
  }

  # GKE's own blue/green: a full green pool, blue drained one node at a time, then a
  # soak that kup ends early once every node is Ready and every workload available.
  node_group "checkout" {
    version         = "1.31"
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak                      = "1h"
      complete_when_healthy_for = "5m"
    }
  }
}
