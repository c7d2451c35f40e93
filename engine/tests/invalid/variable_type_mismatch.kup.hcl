variable "target" {
  type    = number
  default = "1.31"
}

provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = var.target
}
