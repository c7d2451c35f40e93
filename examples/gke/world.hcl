# A simulated GKE cluster two minors behind, with PDB-protected workloads.
gke_cluster "shop" {
  project         = "shop-prod"
  location        = "europe-west1-b"
  version         = "1.29.8-gke.1031000"
  release_channel = "UNSPECIFIED"

  node_pool "default" {
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
  }

  node_pool "checkout" {
    version         = "1.29.8-gke.1031000"
    node_count      = 2
    machine_type    = "e2-standard-4"
  }

  # GKE honours this only for its own automatic upgrades; kup warns when it runs outside it.
  daily_maintenance_window { start_time = "03:00" }

  workload "storefront" {
    namespace = "shop"
    replicas  = 6
    cpu       = "200m"
    memory    = "256Mi"
    pdb { min_available = 4 }
  }

  workload "payments" {
    namespace  = "shop"
    replicas   = 2
    cpu        = "500m"
    memory     = "512Mi"
    node_group = "checkout"
    pdb { max_unavailable = 1 }
  }
}
