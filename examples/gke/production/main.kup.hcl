# Upgrade a real GKE cluster. Credentials: Application Default Credentials
# (`gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the
# metadata server). Build kup with the gke feature: cargo install --path . --features gke
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
  }
}
