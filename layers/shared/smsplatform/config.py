"""One validated settings model, read from the environment once per process."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMS_", extra="ignore", frozen=True)

    # Database: a libpq URL (local stack, tests) or a Secrets Manager secret in the
    # RDS format {host, port, username, password, dbname} (deployed).
    database_url: Annotated[
        SecretStr | None, Field(validation_alias=AliasChoices("DATABASE_URL", "SMS_DATABASE_URL"))
    ] = None
    database_secret_arn: str | None = None
    # Deployed: RDS keeps only {username, password} in its managed secret; where to
    # connect (the RDS Proxy endpoint) and which database come from here.
    database_host: str | None = None
    database_port: int | None = None
    database_name: str | None = None
    db_pool_max_size: Annotated[int, Field(ge=1, le=50)] = 1
    db_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0

    # Sessions: HS256 JWTs signed with a key from the environment (tests) or from
    # Secrets Manager (deployed, local stack).
    jwt_secret: SecretStr | None = None
    jwt_secret_arn: str | None = None
    session_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    secrets_max_age_seconds: Annotated[int, Field(ge=0)] = 300

    # Public base URL of the API, used in the OpenAPI document's servers list.
    public_base_url: str | None = None

    # Contact files: uploaded (or posted) CSVs land here; their upload starts the import.
    imports_bucket: str | None = None
    # The migration files, as the shared layer ships them (/opt is the layer's root in Lambda).
    sql_dir: Path = Path("/opt/sql")
    upload_url_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
