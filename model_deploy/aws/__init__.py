"""The AWS rollout: what the deploy CodePipeline's CodeBuild actions run (``python -m model_deploy ...``).

``registry`` finds the newest approved model version, ``serving`` reads what an endpoint serves, ``render``
holds what rendering each stage's endpoint stack into a CloudFormation template needs (the rendering,
``infra.endpoint_template``, is the CDK's work), ``deploy`` puts a template live through CloudFormation, ``execution`` stops a pipeline execution that has
nothing to do, and ``release`` is the file that carries the decision from one action to the next.

Only rendering needs the CDK; these modules need boto3 alone, so the deploy and smoke-test actions install ``model_deploy/requirements.txt`` and nothing else.
"""
