provider "eks" {
  region              = "eu-west-1"
  requests_per_second = -5
}

cluster "prod" {
  version = "1.31"
}
