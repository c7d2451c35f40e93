# The simulated AWS account the quickstart upgrades.
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"

  node_group "general" {
    version         = "1.28"
    instance_types  = ["m5.large"]
    min_size        = 3
    max_size        = 9
    desired_size    = 6
    max_unavailable = 1
  }

  node_group "payments" {
    version         = "1.28"
    instance_types  = ["m5.xlarge"]
    min_size        = 2
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }

  # Workloads the upgrade must move without breaking their disruption budgets.
  workload "web" {
    namespace = "shop"
    replicas  = 8
    cpu       = "250m"
    memory    = "256Mi"
    pdb { min_available = 6 }
  }
  workload "orders-db" {
    namespace = "shop"
    kind      = "StatefulSet"
    replicas  = 3
    cpu       = "500m"
    memory    = "1Gi"
    pdb { max_unavailable = 1 }
  }
  workload "log-agent" {
    namespace = "monitoring"
    kind      = "DaemonSet"
    cpu       = "50m"
    memory    = "64Mi"
  }

  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
  addon "vpc-cni"    { version = "v1.16.0-eksbuild.1" }
}

# A GKE cluster in the same simulated world (served on the same port).
gke_cluster "shop" {
  project  = "shop-prod"
  location = "europe-west1-b"
  version  = "1.29.8-gke.1031000"

  node_pool "default" {
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
  }

  workload "storefront" {
    namespace = "shop"
    replicas  = 6
    cpu       = "200m"
    memory    = "256Mi"
    pdb { min_available = 4 }
  }
}

# An AKS cluster, served by the same simulator through the Azure Resource Manager API.
aks_cluster "checkout" {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-checkout"
  location        = "westeurope"
  version         = "1.30.9"

  agent_pool "system" {
    mode      = "System"
    version   = "1.30.9"
    count     = 2
    max_surge = "1"
  }

  agent_pool "apps" {
    mode            = "User"
    version         = "1.30.9"
    count           = 3
    max_surge       = "1"
    max_unavailable = "0"
  }

  workload "cart" {
    namespace  = "checkout"
    replicas   = 4
    cpu        = "250m"
    memory     = "256Mi"
    node_group = "apps"
    pdb { min_available = 3 }
  }
}

# A K3s cluster with no cloud API: 2 servers and 3 agents, system-upgrade-controller
# installed, and the channel server kup asks for the newest patch of each minor.
k3s_cluster "edge" {
  distribution = "k3s"
  version      = "v1.29.8+k3s1"
  servers      = 2
  agents       = 3
  suc {
    installed = true
  }
  channel_server {
    channels = {
      "v1.30" = "v1.30.9+k3s1"
      "v1.31" = "v1.31.4+k3s1"
      stable  = "v1.31.4+k3s1"
    }
  }
  workload "sensors" {
    namespace = "edge"
    replicas  = 3
    cpu       = "100m"
    memory    = "128Mi"
    pdb {
      max_unavailable = 1
    }
  }
}
