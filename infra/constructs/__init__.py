"""Small CDK constructs, one per module, each with typed props; the stacks in ``infra.stacks`` compose them."""
