resource "aws_dynamodb_table" "this" {
  #checkov:skip=CKV_AWS_119:The table holds token counts per caller name and day or month, no secret and no prompt; DynamoDB encrypts it at rest with the AWS managed key aws/dynamodb, which needs no key policy for the proxy's role.
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  # Only key attributes may be declared; tokens and expires_at need no declaration.
  # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html#DDB-CreateTable-request-AttributeDefinitions
  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = var.tags
}
