provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = var.target
}
