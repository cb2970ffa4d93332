"""The reader and writer database roles (migration 0004) sign in with the passwords in their own Secrets Manager
secrets: after the migrations, the migrate function (the master user) sets each role's password from its
secret, so a secret's value and its role agree after every deploy (and after a rotation, the next deploy)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from closecast.db.data_api import DataApi
from closecast.errors import ConfigurationError

ROLES = ("closecast_reader", "closecast_writer")


def role_credentials(secrets_client: Any, secret_arn: str) -> tuple[str, str]:
    """(username, password) of a role's secret; the username must be one of the closecast roles."""
    value = secrets_client.get_secret_value(SecretId=secret_arn)
    try:
        document = json.loads(value["SecretString"])
        username, password = str(document["username"]), str(document["password"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"secret {secret_arn} has no username and password") from exc
    if username not in ROLES:
        raise ConfigurationError(f"secret {secret_arn} names {username!r}, not one of {', '.join(ROLES)}")
    return username, password


def set_role_passwords(api: DataApi, secrets_client: Any, secret_arns: Sequence[str]) -> list[str]:
    """Give each secret's role the secret's password; return the roles set."""
    done = []
    for arn in secret_arns:
        username, password = role_credentials(secrets_client, arn)
        api.execute(
            "SELECT closecast_set_role_password(:role, :password)", {"role": username, "password": password}
        )
        done.append(username)
    return done
