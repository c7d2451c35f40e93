# AKS against kup's simulator: kup's Azure Resource Manager client, pointed at an
# in-process simulator of the managedClusters and agentPools APIs.
#
#   kup apply -auto-approve examples/aks
#
# production/ is the same upgrade written for a real subscription.

provider "aks" {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  simulate        = true
  world           = "world.hcl"
}

cluster "prod" {
  version = "1.31"

  # System pools surge only: AKS does not allow maxUnavailable on them.
  node_group "system" {
    max_unavailable = 0
    max_surge       = 1
  }

  # Surge a third of the pool; AKS stops the upgrade if a drain is blocked for 15 minutes,
  # and the next `kup apply` resumes it.
  node_group "apps" {
    max_unavailable = 0
    max_surge       = "34%"
    drain {
      timeout = "15m"
    }
  }

  # Replaced by a new pool (batchv131) cloned from this one; the old one is deleted after
  # the soak.
  node_group "batch" {
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak = "10m"
    }
  }
}
