"""The stacks of the template; each only composes constructs from ``infra.constructs``."""
