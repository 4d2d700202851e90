#!/usr/bin/env python3
"""The CDK app: ``npx aws-cdk@2 synth`` / ``deploy --all``; settings come from ``cdk.json`` context."""

import sys

from aws_cdk import App

from infra.app_builder import build_app, build_project_template, load_from_context
from infra.project_template_settings import ProjectTemplateSettings


def main() -> int:
    app = App()
    try:
        config, settings = load_from_context(app)
        template_settings = ProjectTemplateSettings.from_context(app.node.try_get_context)
    except ValueError as error:  # SettingsError and the template's: a bad -c value, named in the message
        print(f"error: {error}", file=sys.stderr)
        return 1
    build_app(app, config, settings)
    # context sagemakerExecutionRoleArns: see docs/platform-teams.md, "As a SageMaker project template"
    if template_settings.enabled:
        build_project_template(app, config, settings, template_settings)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
