provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  provider = "gke"
  version  = "1.31"
}
