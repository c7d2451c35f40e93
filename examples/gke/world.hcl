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

  workload "storefront" {
    namespace = "shop"
    replicas  = 6
    cpu       = "200m"
    memory    = "256Mi"
    pdb { min_available = 4 }
  }
}
