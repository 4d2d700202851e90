"""One line for an AWS client that cannot start: no credentials, no region, a missing profile.

botocore raises these from deep inside the first call (the SageMaker SDK's, boto3's); both CLIs turn them
into this line and exit status 2 instead of a page of traceback. botocore is imported only when an error
is being looked at, so the local mode's CLI does not pay for it.
"""

from __future__ import annotations

NO_CREDENTIALS = "no AWS credentials: configure them (aws configure, AWS_PROFILE or the AWS_* variables)"
NO_REGION = "no AWS region: set AWS_DEFAULT_REGION (or a region in the AWS profile)"


def aws_setup_problem(error: BaseException) -> str | None:
    """What is missing from the AWS setup when ``error`` says so, else ``None`` (a real error: re-raise it)."""
    if not type(error).__module__.startswith("botocore"):
        return None
    from botocore.exceptions import (
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return NO_CREDENTIALS if isinstance(error, NoCredentialsError) else f"{NO_CREDENTIALS}: {error}"
    if isinstance(error, NoRegionError):
        return NO_REGION
    if isinstance(error, ProfileNotFound):
        return f"{error}: create it (aws configure --profile NAME) or unset AWS_PROFILE"
    return None
