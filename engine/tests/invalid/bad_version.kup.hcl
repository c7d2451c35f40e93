provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = "one.thirty-one"
}
