"""The local endpoints: the SageMaker runtime API on 127.0.0.1, and the rollout an approval starts."""
