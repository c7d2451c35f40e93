# A simulated AKS cluster two minors behind, with a System pool, a User pool and a
# PDB-protected workload.
aks_cluster "prod" {
  subscription_id         = "00000000-0000-0000-0000-000000000001"
  resource_group          = "rg-prod"
  location                = "westeurope"
  version                 = "1.29.9"
  node_os_upgrade_channel = "NodeImage"

  agent_pool "system" {
    mode      = "System"
    version   = "1.29.9"
    count     = 2
    max_surge = "1"
  }

  agent_pool "apps" {
    mode            = "User"
    version         = "1.29.9"
    count           = 4
    max_surge       = "1"
    max_unavailable = "0"
  }

  agent_pool "batch" {
    mode    = "User"
    version = "1.29.9"
    count   = 2
  }

  workload "web" {
    namespace  = "shop"
    replicas   = 6
    cpu        = "200m"
    memory     = "256Mi"
    node_group = "apps"
    pdb { min_available = 4 }
  }

  workload "reports" {
    namespace = "batch"
    replicas  = 2
    cpu       = "500m"
    memory    = "512Mi"
    pdb { max_unavailable = 1 }
  }
}
