#!/usr/bin/env python3
"""The CDK app: ``npx aws-cdk@2 synth`` / ``deploy --all``; settings come from ``cdk.json`` context."""

from aws_cdk import App

from infra.app_builder import build_app, load_from_context

app = App()
config, settings = load_from_context(app)
build_app(app, config, settings)
app.synth()
