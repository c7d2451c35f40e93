provider "eks" {
  region   = "eu-west-1"
  endpoint = "http://eks.internal.example.com"
}

cluster "prod" {
  version = "1.31"
}
