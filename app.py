#!/usr/bin/env python3
"""The CDK app: ``npx aws-cdk@2 synth`` / ``deploy --all``; settings come from ``cdk.json`` context."""

from aws_cdk import App

from infra.app_builder import build_app, build_project_template, load_from_context
from infra.project_template_settings import ProjectTemplateSettings

app = App()
config, settings = load_from_context(app)
build_app(app, config, settings)
template_settings = ProjectTemplateSettings.from_context(app.node.try_get_context)
if template_settings.enabled:  # context sagemakerExecutionRoleArns: see README "SageMaker projects"
    build_project_template(app, config, settings, template_settings)
app.synth()
