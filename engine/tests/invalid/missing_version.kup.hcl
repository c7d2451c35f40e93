provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  name = "prod-eu"
}
