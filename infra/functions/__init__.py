"""Source of the template's small Lambda functions, inlined into their stacks (standard library and boto3 only)."""
