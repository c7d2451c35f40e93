provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = "1.31"
}

rollout "q3" {
  wave "prod" {
    clusters = ["prod"]
    after    = ["staging"]
  }
}
