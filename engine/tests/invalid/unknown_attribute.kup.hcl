provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  versoin = "1.31"
}
