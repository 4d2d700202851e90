"""The two runners of the pipeline description: local (subprocesses over the local AWS stand-ins) and SageMaker."""
