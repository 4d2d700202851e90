"""Putting a stage's rendered template live through CloudFormation, safely and only when needed.

Why the deploy action calls CloudFormation itself rather than using CodePipeline's CloudFormation action: two
decisions need the live state at deploy time, which a pipeline action cannot look at.

- **Idempotence.** A stage whose endpoint already serves the release's package is left alone (the run says
  so). Prod is checked again after the manual gate, since another execution may have deployed meanwhile.
- **An instance type change under autoscaling.** SageMaker refuses to update an autoscaled variant to another
  instance type, and CloudFormation updates the endpoint before it would touch the scalable target. So when
  the live instance type differs from the template's and the live stack has autoscaling, a first update
  deploys the *live* template without its scaling resources (CloudFormation deletes the policy and
  deregisters the target, nothing else changes), then the new template brings the new type and registers
  autoscaling again. Between the two, the endpoint keeps serving at its current size without scaling; if the
  second update fails (and CloudFormation rolls it back), the live template is deployed again, so the old
  version serves with its autoscaling as before.

While an update of an existing endpoint runs (the blue/green bake of deployment guardrails), the deploy sends
the smoke test's requests to the endpoint every poll, so that the rollback alarms (5xx errors, latency) have
traffic to judge: a staging endpoint gets none otherwise. Once the update is done, the endpoint must serve the
new package (a silent rollback by SageMaker is a failure that names what serves), and the smoke test must pass;
if it does not, the stack is updated back to the template that served before (the previous package, same
stack), and the deploy fails saying so.

Each update is a change set (visible in the stack's history), run with the CloudFormation role that the
deploy-pipeline stack created for endpoint stacks. A stack left in ``ROLLBACK_COMPLETE`` by a failed first
creation holds no endpoint and cannot be updated: it is deleted and created again. A stack in
``REVIEW_IN_PROGRESS`` (a first change set that failed, or was never executed because the run stopped) holds
no resources either, and stays so forever: unless one of its change sets is still being created (another
deploy running), it is deleted with its change sets and created again.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from model_deploy.aws.serving import Serving, current_serving, same_package

AUTOSCALING_TYPES = frozenset(
    {"AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy"}
)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class DeployFailed(Exception):
    """A stack update failed (CloudFormation rolled it back) or left the endpoint serving something else."""


def endpoint_instance_type(template: dict[str, Any]) -> str | None:
    """The instance type of the template's endpoint config (one variant)."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::SageMaker::EndpointConfig":
            return resource["Properties"]["ProductionVariants"][0]["InstanceType"]
    return None


def has_autoscaling(template: dict[str, Any]) -> bool:
    return any(r.get("Type") in AUTOSCALING_TYPES for r in template.get("Resources", {}).values())


def without_autoscaling(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with its scalable target and scaling policy removed, and every mention of them."""
    stripped = copy.deepcopy(template)
    resources = stripped["Resources"]
    removed = {logical_id for logical_id, r in resources.items() if r.get("Type") in AUTOSCALING_TYPES}
    for logical_id in removed:
        del resources[logical_id]
    for resource in resources.values():
        depends_on = resource.get("DependsOn")
        if depends_on is not None:
            kept = [
                d for d in ([depends_on] if isinstance(depends_on, str) else depends_on) if d not in removed
            ]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    leftover = [logical_id for logical_id in removed if logical_id in json.dumps(stripped)]
    if leftover:
        raise DeployFailed(f"cannot remove autoscaling: the template still refers to {', '.join(leftover)}")
    return stripped


@dataclass
class StackDeployer:
    """Change sets on one stack, waited for; failures come back with CloudFormation's reasons."""

    cloudformation: Any
    role_arn: str
    poll_seconds: int = 30
    timeout_seconds: int = 6 * 3600
    log: Callable[[str], None] = print
    during_update: Callable[[], None] | None = None
    """Called every ``poll_seconds`` while an update runs (traffic for the blue/green bake), in a thread."""

    def _waiter_config(self) -> dict[str, int]:
        return {
            "Delay": self.poll_seconds,
            "MaxAttempts": max(1, self.timeout_seconds // max(1, self.poll_seconds)),
        }

    def status(self, stack_name: str) -> str | None:
        try:
            (stack,) = self.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as error:
            if "does not exist" in str(error):
                return None
            raise
        return stack["StackStatus"]

    def live_template(self, stack_name: str) -> dict[str, Any]:
        body = self.cloudformation.get_template(StackName=stack_name, TemplateStage="Original")[
            "TemplateBody"
        ]
        return json.loads(body) if isinstance(body, str) else dict(body)

    def change_set_being_created(self, stack_name: str) -> bool:
        """Whether a change set of ``stack_name`` is still being created (another deploy is running)."""
        summaries = self.cloudformation.list_change_sets(StackName=stack_name).get("Summaries", [])
        return any(summary.get("Status") in ("CREATE_PENDING", "CREATE_IN_PROGRESS") for summary in summaries)

    def delete(self, stack_name: str) -> None:
        self.cloudformation.delete_stack(StackName=stack_name, RoleARN=self.role_arn)
        self._wait("stack_delete_complete", stack_name, "deleting")

    def deploy(self, stack_name: str, template: dict[str, Any], *, reason: str) -> bool:
        """Create or update ``stack_name`` to ``template``; False when CloudFormation finds nothing to change."""
        exists = self.status(stack_name) is not None
        change_set_name = f"deploy-{int(time.time())}"
        self.cloudformation.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set_name,
            ChangeSetType="UPDATE" if exists else "CREATE",
            TemplateBody=json.dumps(template),
            RoleARN=self.role_arn,
            Description=reason[:1024],
        )
        try:
            self.cloudformation.get_waiter("change_set_create_complete").wait(
                StackName=stack_name, ChangeSetName=change_set_name, WaiterConfig=self._waiter_config()
            )
        except Exception as error:
            described = self.cloudformation.describe_change_set(
                StackName=stack_name, ChangeSetName=change_set_name
            )
            status_reason = described.get("StatusReason", "")
            if any(marker in status_reason for marker in NO_CHANGES):
                self.cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set_name)
                self.log(f"{stack_name}: no changes")
                return False
            raise DeployFailed(f"{stack_name}: the change set failed: {status_reason or error}") from None
        self.log(f"{stack_name}: executing change set {change_set_name} ({reason})")
        self.cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=change_set_name)
        with self._meanwhile(self.during_update if exists else None):
            self._wait("stack_update_complete" if exists else "stack_create_complete", stack_name, "updating")
        return True

    @contextlib.contextmanager
    def _meanwhile(self, action: Callable[[], None] | None) -> Iterator[None]:
        """Run ``action`` now and every ``poll_seconds`` in a thread until the block ends (errors are logged)."""
        if action is None:
            yield
            return
        done = threading.Event()

        def repeat() -> None:
            while True:
                try:
                    action()
                except Exception as error:  # traffic must not stop the deploy; the alarms judge it
                    self.log(f"traffic during the update: {error}")
                if done.wait(self.poll_seconds):
                    return

        thread = threading.Thread(target=repeat, name="bake-traffic", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=max(60, 2 * self.poll_seconds))

    def _wait(self, waiter: str, stack_name: str, doing: str) -> None:
        try:
            self.cloudformation.get_waiter(waiter).wait(
                StackName=stack_name, WaiterConfig=self._waiter_config()
            )
        except Exception as error:
            raise DeployFailed(
                f"{stack_name}: {doing} failed: {self._failure_reasons(stack_name) or error}"
            ) from None

    def _failure_reasons(self, stack_name: str, limit: int = 5) -> str:
        """The latest failed resources' reasons, newest first (what the console's Events tab shows)."""
        try:
            events = self.cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        except Exception:
            return ""
        failed = [
            f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
            for e in events
            if e["ResourceStatus"].endswith("FAILED")
        ]
        return "; ".join(failed[:limit])


@dataclass(frozen=True)
class StageDeployment:
    stage: str
    endpoint_name: str
    stack_name: str
    package_arn: str
    template: dict[str, Any]


SmokeTest = Callable[[str], tuple[bool, str]]
"""Invokes an endpoint as the smoke test does: (passed, summary with the failures)."""


def deploy_stage(
    sagemaker: Any, deployer: StackDeployer, target: StageDeployment, smoke_test: SmokeTest | None = None
) -> str:
    """Bring ``target`` live unless it already is; returns ``"current"`` or ``"deployed"``; raises DeployFailed.

    With ``smoke_test``, the new version is smoke-tested once the update is done; when it fails, the stack is
    put back on the template that served before (the previous package, same stack) and DeployFailed says so.
    """
    log = deployer.log
    serving = current_serving(sagemaker, target.endpoint_name)
    if serving is not None and serving.serves(target.package_arn):
        log(f"{target.stage}: {target.endpoint_name} already serves {target.package_arn}; left alone")
        return "current"
    status = deployer.status(target.stack_name)
    if status == "REVIEW_IN_PROGRESS" and not deployer.change_set_being_created(target.stack_name):
        log(
            f"{target.stack_name}: a first change set was never executed (REVIEW_IN_PROGRESS, no resources); "
            "deleting the stack and its change sets to create it again"
        )
        deployer.delete(target.stack_name)
        status = None
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise DeployFailed(f"{target.stack_name} is {status}: another deploy is running; retry once it ends")
    if status == "ROLLBACK_COMPLETE":
        log(
            f"{target.stack_name}: its first creation failed and holds no endpoint; deleting it to create it again"
        )
        deployer.delete(target.stack_name)
        status = None
    log(
        f"{target.stage}: {target.endpoint_name} serves {serving.describe() if serving else 'nothing'}; "
        f"deploying {target.package_arn}"
    )
    restore: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    if status is not None and serving is not None:
        new_type = endpoint_instance_type(target.template)
        live = deployer.live_template(target.stack_name)
        previous = live if serving.model_package_arn else None
        if serving.instance_type and new_type and serving.instance_type != new_type and has_autoscaling(live):
            log(
                f"{target.stage}: the instance type changes from {serving.instance_type} to {new_type}, which "
                "SageMaker refuses while the variant is autoscaled: removing autoscaling first"
            )
            deployer.deploy(
                target.stack_name,
                without_autoscaling(live),
                reason=f"remove autoscaling before the instance type changes to {new_type}",
            )
            restore = live
    try:
        deployer.deploy(target.stack_name, target.template, reason=f"serve {target.package_arn}")
    except DeployFailed:
        if restore is not None:
            # The update rolled back to the autoscaling-free step: put the live template back as it was.
            log(f"{target.stage}: the update failed; restoring the previous template with its autoscaling")
            deployer.deploy(target.stack_name, restore, reason="restore autoscaling after a failed update")
        raise
    after = current_serving(sagemaker, target.endpoint_name)
    if after is None or not same_package(after.model_package_arn, target.package_arn):
        raise DeployFailed(
            f"{target.endpoint_name} serves {after.describe() if after else 'nothing'} after the update, "
            f"not {target.package_arn}: the update was rolled back"
        )
    log(f"{target.stage}: {target.endpoint_name} serves {target.package_arn} ({after.status})")
    if smoke_test is not None:
        passed, summary = smoke_test(target.endpoint_name)
        log(f"{target.stage}: {summary}")
        if not passed:
            raise DeployFailed(_roll_back(sagemaker, deployer, target, serving, previous, summary))
    return "deployed"


def _roll_back(
    sagemaker: Any,
    deployer: StackDeployer,
    target: StageDeployment,
    serving: Serving | None,
    previous: dict[str, Any] | None,
    summary: str,
) -> str:
    """Put the stage back on what it served before the smoke test failed; the message says where it stands."""
    failed = f"{target.package_arn} failed its smoke test on {target.endpoint_name} ({summary})"
    if previous is None or serving is None or not serving.model_package_arn:
        return (
            f"{failed}; nothing served before on this stage, so the endpoint stays on the failed version: "
            "reject the version in the registry, and approve a fixed one"
        )
    deployer.log(f"{target.stage}: the smoke test failed; putting {serving.model_package_arn} back")
    try:
        deployer.deploy(
            target.stack_name, previous, reason=f"smoke test of {target.package_arn} failed: roll back"
        )
    except DeployFailed as error:
        return f"{failed}; putting {serving.model_package_arn} back failed too: {error}"
    now = current_serving(sagemaker, target.endpoint_name)
    if now is None or not same_package(now.model_package_arn, serving.model_package_arn):
        return f"{failed}; after the rollback {target.endpoint_name} serves {now.describe() if now else 'nothing'}"
    return f"{failed}; {target.stage} is back on {serving.model_package_arn}"
