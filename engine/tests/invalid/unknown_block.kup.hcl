provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = "1.31"
  nodegroup "general" {
    max_unavailable = 1
  }
}
