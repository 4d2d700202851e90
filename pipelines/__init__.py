"""Runners and CLI of the template: ``python -m pipelines ...`` runs the model-build pipeline locally or on SageMaker.

Importing this package stays cheap on purpose: the local mode must never import ``sagemaker``.
"""
