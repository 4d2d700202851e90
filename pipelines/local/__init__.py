"""The local mode: the model-build pipeline on one machine, with a local Feature Store and Model Registry.

Everything lives in one run folder (``.mlops/`` by default, see :mod:`pipelines.local.workspace`). Nothing
here imports ``sagemaker``: the local mode needs no AWS account, no Docker and no network.
"""
