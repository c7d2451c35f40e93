provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = "1.31"
}

rollout "q3" {
  wave "prod" {
    clusters = ["prod"]
    window {
      days      = ["tue"]
      start     = "09:00"
      end       = "16:00"
      time_zone = "Europe/Atlantis"
    }
  }
}
