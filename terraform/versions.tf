terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      # 6.28 is the first to add lambda:InvokeFunction (InvokedViaFunctionUrl)
      # for a public Function URL, which Lambda requires since October 2025.
      source  = "hashicorp/aws"
      version = ">= 6.28"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6"
    }
  }
}
