"""The core's settings, and the base of every plugin's settings; read from the environment and `.env`.

Each plugin (a chat surface, a provider) owns a settings class with its own environment prefix;
`Settings.section` reads one from the same sources as the core's, so a value given to `Settings`
by its variable name (as tests do) reaches the plugin that owns it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import words
from bot.model.errors import ConfigError
from bot.model.secrets import key_problem

_SOURCES = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
)


def postgres_label(url: str) -> str:
    """A PostgreSQL URL fit to print: its host, port and database, never its user or password."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"postgresql://{parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/')}"


class PluginSettings(BaseSettings):
    """A plugin's own settings. Subclasses set their `env_prefix` in `model_config`."""

    # Empty values (as in a copied .env.example) mean "not set".
    model_config = _SOURCES


S = TypeVar("S", bound=BaseSettings)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or networks (`10.0.0.0/8`, `::1`) as networks."""
    networks = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an address or a network (e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


ADMIN_TOKEN_MIN = 16

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Where the bot's server listens unless HIDREAM_HTTP_PORT says otherwise. Read when settings are made
# (not when the class is), so that a test can stand in a port it holds for the default.
DEFAULT_HTTP_PORT = 8080


def _default_http_port() -> int:
    return DEFAULT_HTTP_PORT


class Settings(BaseSettings):
    model_config = _SOURCES

    # Provider choice (each provider's own settings live with it)
    provider: str | None = Field(default=None, alias="HIDREAM_PROVIDER")
    # Several providers in order of preference (comma-separated); wins over HIDREAM_PROVIDER.
    providers: str = Field(default="", alias="HIDREAM_PROVIDERS")
    model: Literal["full", "dev"] = Field(default="full", alias="HIDREAM_MODEL")
    safety_checker: bool = Field(default=True, alias="HIDREAM_SAFETY_CHECKER")

    # The bot's own HTTP server and state
    http_host: str = Field(default="127.0.0.1", alias="HIDREAM_HTTP_HOST")
    http_port: int = Field(default_factory=_default_http_port, ge=0, le=65535, alias="HIDREAM_HTTP_PORT")
    public_url: str = Field(default="", alias="HIDREAM_PUBLIC_URL")
    db_path: Path = Field(default=Path("./hidream-bot.db"), alias="HIDREAM_DB_PATH")
    # Empty: SQLite at db_path. A postgresql:// URL: that PostgreSQL database (it may hold a password,
    # hence a secret: never logged or printed whole; `database_label` names it without one).
    database_url: SecretStr = Field(default=SecretStr(""), alias="HIDREAM_DATABASE_URL")
    daily_image_quota: int = Field(default=25, ge=0, le=1_000_000, alias="HIDREAM_DAILY_IMAGE_QUOTA")
    # Images a whole server or workspace (a tenant) may make per UTC day, unless an operator set
    # another ceiling for it; its admins cannot raise it. Empty: no ceiling.
    daily_workspace_quota: int | None = Field(
        default=None, ge=0, le=1_000_000, alias="HIDREAM_DAILY_WORKSPACE_QUOTA"
    )
    # The highest daily limit a tenant's admins may set for their members (or reach by grants and
    # resets), unless an operator allows more there (`hidream-bot quota admin-max`). Empty: the bot's
    # daily quota, so a server anyone can create cannot lift its members past it on the operator's account.
    admin_max_limit: int | None = Field(default=None, ge=0, le=1_000_000, alias="HIDREAM_ADMIN_MAX_LIMIT")
    # Images one person (a surface and their user id) may make per UTC day in every tenant together.
    # Empty: no such cap.
    daily_person_quota: int | None = Field(
        default=None, ge=0, le=1_000_000, alias="HIDREAM_DAILY_PERSON_QUOTA"
    )
    # Whether people see dollars (their tenant's monthly spend and budget) in usage answers.
    show_spend: bool = Field(default=False, alias="HIDREAM_SHOW_SPEND")
    job_timeout_seconds: float = Field(default=900.0, gt=0, alias="HIDREAM_JOB_TIMEOUT_SECONDS")
    # Largest reference image accepted (bytes).
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0, alias="HIDREAM_MAX_IMAGE_BYTES")
    # Where image bytes live. Empty: files beside SQLite, or the PostgreSQL media rows.
    # `s3://bucket/prefix`: that S3-compatible object store (storage/objects.py), at HIDREAM_S3_ENDPOINT
    # (empty: AWS itself, by region) with the AWS_* credentials (empty: the machine's own, as the
    # AWS tools find them). HIDREAM_MEDIA_REDIRECT: media links answer with a presigned URL of the
    # store instead of streaming the image through the bot.
    media_url: str = Field(default="", alias="HIDREAM_MEDIA_URL")
    s3_endpoint: str = Field(default="", alias="HIDREAM_S3_ENDPOINT")
    media_redirect: bool = Field(default=False, alias="HIDREAM_MEDIA_REDIRECT")
    aws_region: str = Field(default="", alias="AWS_REGION")
    aws_default_region: str = Field(default="", alias="AWS_DEFAULT_REGION")
    aws_access_key_id: str = Field(default="", alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr = Field(default=SecretStr(""), alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr = Field(default=SecretStr(""), alias="AWS_SESSION_TOKEN")
    # Images not used for this many days, and finished jobs' bulky data, are deleted; 0 keeps all.
    media_retention_days: int = Field(default=30, ge=0, alias="HIDREAM_MEDIA_RETENTION_DAYS")
    # Per tenant: at most this many saved subjects, this many MB of their images; a subject unused
    # this many days is deleted with its images (0: kept while its tenant keeps it).
    max_subjects: int = Field(default=50, ge=0, le=100_000, alias="HIDREAM_MAX_SUBJECTS")
    subject_storage_mb: int = Field(default=200, ge=0, le=10_000_000, alias="HIDREAM_SUBJECT_STORAGE_MB")
    subject_retention_days: int = Field(default=365, ge=0, alias="HIDREAM_SUBJECT_RETENTION_DAYS")
    # The most jobs this process works on at once; the rest wait in the queue, told their position.
    max_active_jobs: int = Field(default=64, ge=1, alias="HIDREAM_MAX_ACTIVE_JOBS")
    # The most job results kept and posted at once (each streamed from its spooled file to the media
    # store and the platform, never whole in memory); the other finished jobs wait their turn. Set by
    # the network profile of `make bench` (docs/benchmarks.md): enough uploads at 10 MB/s each to keep
    # a burst going, each costing a few hundred KB of buffers.
    max_uploads: int = Field(default=16, ge=1, le=1000, alias="HIDREAM_MAX_UPLOADS")
    # The earlier name of the same bound, from when results were held whole in memory: honoured when
    # HIDREAM_MAX_UPLOADS is not given (`upload_slots`).
    max_results_in_memory: int = Field(default=2, ge=1, alias="HIDREAM_MAX_RESULTS_IN_MEMORY")
    # The most seconds one result image may take to download (within the job's own deadline): a
    # host that trickles bytes fails its own job, with the quota given back, instead of holding it.
    result_fetch_seconds: float = Field(default=120.0, gt=0, alias="HIDREAM_RESULT_FETCH_SECONDS")
    # Host names (comma-separated) of the providers' file hosts whose result URLs are fetched without
    # the checks typed URLs get (public addresses only, at every redirect). Empty: every host checked.
    trusted_result_hosts: str = Field(default="", alias="HIDREAM_TRUSTED_RESULT_HOSTS")
    # How long a replica's hold on a job lasts unless renewed (every third of it): a replica that
    # dies has its jobs taken over by another within about 4/3 of this.
    lease_seconds: float = Field(default=30.0, ge=1, le=600, alias="HIDREAM_LEASE_SECONDS")
    log_level: str = Field(default="INFO", alias="HIDREAM_LOG_LEVEL")
    # `json`: one JSON object per log line (with the job's id, tenant, provider and state), for log
    # collectors; `text`: lines for people.
    log_format: Literal["text", "json"] = Field(default="text", alias="HIDREAM_LOG_FORMAT")
    # Set: the operators' page at /admin, opened with this token (a secret: never logged or shown).
    admin_token: SecretStr = Field(default=SecretStr(""), alias="HIDREAM_ADMIN_TOKEN")
    # The key that seals the secrets kept in the database (installation tokens; bot/model/secrets.py),
    # and, while keys change, the one before it, read only to seal again under the new one.
    secret_key: SecretStr = Field(default=SecretStr(""), alias="HIDREAM_SECRET_KEY")
    secret_key_old: SecretStr = Field(default=SecretStr(""), alias="HIDREAM_SECRET_KEY_OLD")
    # The certificate chain (leaf first) and its private key that sign every image's content credentials
    # (bot/jobs/credentials.py), each as PEM text or the path of a PEM file. Unset: the bot's own small
    # certificate authority, made at first run and kept in the database.
    c2pa_cert: str = Field(default="", alias="HIDREAM_C2PA_CERT")
    c2pa_key: SecretStr = Field(default=SecretStr(""), alias="HIDREAM_C2PA_KEY")

    @field_validator("secret_key", "secret_key_old")
    @classmethod
    def _secret_key(cls, v: SecretStr) -> SecretStr:
        key = v.get_secret_value().strip()
        problem = key_problem(key) if key else None
        if problem:
            raise ValueError(problem)  # never the value itself
        return SecretStr(key)

    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed.
    trusted_proxies: str = Field(default="", alias="HIDREAM_TRUSTED_PROXIES")

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: str) -> str:
        return ",".join(str(network) for network in proxy_networks(v))

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return proxy_networks(self.trusted_proxies)

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: SecretStr) -> SecretStr:
        token = v.get_secret_value().strip()
        if token and len(token) < ADMIN_TOKEN_MIN:
            # Anyone who reaches the server may try tokens: a short one is guessed. Never echo it.
            raise ValueError(f"must be at least {ADMIN_TOKEN_MIN} characters (e.g. `openssl rand -hex 24`)")
        return SecretStr(token)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        level = v.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{v!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: str) -> str:
        names = [name.strip().lower() for name in v.split(",")]
        if names == [""]:
            return ""
        if "" in names:
            raise ValueError(
                "a comma-separated list of provider names, in order of preference (one is empty)"
            )
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is named more than once")
        return ",".join(names)

    def chosen(self, name: str) -> bool:
        """Whether the setting `name` (a field) was given (environment, `.env` or an argument), not defaulted."""
        return name in self.model_fields_set

    @property
    def upload_slots(self) -> int:
        """HIDREAM_MAX_UPLOADS, or the older HIDREAM_MAX_RESULTS_IN_MEMORY when only that is given."""
        if self.chosen("max_results_in_memory") and not self.chosen("max_uploads"):
            return self.max_results_in_memory
        return self.max_uploads

    @property
    def provider_order(self) -> list[str]:
        """HIDREAM_PROVIDERS as a list; empty when unset."""
        return self.providers.split(",") if self.providers else []

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: SecretStr) -> SecretStr:
        url = v.get_secret_value().strip()
        if url and not url.startswith(("postgresql://", "postgres://")):
            # The value may hold a password: the message says what is wanted, never what was given.
            raise ValueError("must be empty (SQLite) or a postgresql:// URL")
        return SecretStr(url)

    @field_validator("media_url")
    @classmethod
    def _media_url(cls, v: str) -> str:
        v = v.strip()
        if v and (
            not v.startswith("s3://") or not v[len("s3://") :].split("/", 1)[0] or "?" in v or "#" in v
        ):
            raise ValueError("must be empty (images beside the database) or s3://bucket/prefix")
        return v

    @field_validator("s3_endpoint")
    @classmethod
    def _s3_endpoint(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        return http_url(v) if v else v

    def media_label(self) -> str:
        """Where image bytes live, fit to print (no credential)."""
        if self.media_url:
            where = f" at {self.s3_endpoint}" if self.s3_endpoint else ""
            how = ", links redirect to the store" if self.media_redirect else ""
            return f"object store {self.media_url}{where}{how}"
        return "PostgreSQL rows" if self.postgres_url else f"files in {self.db_path.resolve()}.media"

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL URL, or None for SQLite."""
        return self.database_url.get_secret_value() or None

    def database_label(self) -> str:
        """Where the store lives, fit to print: the PostgreSQL host, port and database, no password."""
        url = self.postgres_url
        return str(self.db_path.resolve()) if url is None else postgres_label(url)

    # The values these settings were given by variable name, passed on to every plugin's section.
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._given = values

    def section(self, settings_class: type[S]) -> S:
        """A plugin's settings, from the environment, `.env` and the values these settings were given."""
        return read_settings(settings_class, self._given)


def http_url(value: str) -> str:
    """A validator for a setting that must be an http(s) URL."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


def env_names(settings_class: type[BaseSettings]) -> dict[str, str]:
    """Each field of a settings class and the environment variable that sets it."""
    prefix = str(settings_class.model_config.get("env_prefix") or "")
    names = {}
    for field_name, info in settings_class.model_fields.items():
        names[field_name] = info.alias or (prefix + field_name).upper()
    return names


def read_settings(settings_class: type[S], given: Mapping[str, Any] | None = None) -> S:
    """Settings from the environment and `.env`; `given` values, by variable name, win. A bad value
    becomes a ConfigError naming the variable."""
    names = env_names(settings_class)
    values = dict(given or {})
    init: dict[str, Any] = {k: v for k, v in values.items() if k.startswith("_")}  # e.g. _env_file
    for field_name, info in settings_class.model_fields.items():
        if names[field_name] in values:
            init[info.alias or field_name] = values[names[field_name]]
    try:
        return settings_class(**init)
    except ValidationError as exc:
        raise config_error(exc, names) from None


def config_error(exc: ValidationError, names: Mapping[str, str]) -> ConfigError:
    """Every bad value, each named by its variable and said in our words (never the library's)."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        problems.append(f"{names.get(loc, loc)}: {setting_problem(err['type'], err.get('ctx') or {})}")
    return ConfigError(words.invalid_settings(problems))


# pydantic's kinds of error, as our words say them (those with a bound take it from `ctx`).
_SAID = {
    "bool_parsing": words.SETTING_NOT_TRUE_OR_FALSE,
    "bool_type": words.SETTING_NOT_TRUE_OR_FALSE,
    "int_parsing": words.SETTING_NOT_WHOLE,
    "int_type": words.SETTING_NOT_WHOLE,
    "int_from_float": words.SETTING_NOT_WHOLE,
    "float_parsing": words.SETTING_NOT_NUMBER,
    "float_type": words.SETTING_NOT_NUMBER,
    "finite_number": words.SETTING_NOT_NUMBER,
    "string_type": words.SETTING_NOT_TEXT,
}
_BOUNDS = {
    "greater_than_equal": ("ge", words.setting_at_least),
    "greater_than": ("gt", words.setting_more_than),
    "less_than_equal": ("le", words.setting_at_most),
    "less_than": ("lt", words.setting_less_than),
}


def setting_problem(kind: str, ctx: Mapping[str, Any]) -> str:
    """What is wrong with a value, from pydantic's kind of error and its context: a validator's own
    sentence (our ValueError), a bound, the choices, or the type wanted."""
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind in _BOUNDS:
        key, say = _BOUNDS[kind]
        bound = ctx.get(key)
        return say(int(bound) if isinstance(bound, float) and bound.is_integer() else bound)
    if kind == "literal_error" and "expected" in ctx:
        return words.setting_one_of(str(ctx["expected"]))
    return _SAID.get(kind, words.SETTING_NOT_ACCEPTED)


def load_settings(**overrides: object) -> Settings:
    """Read the core's settings; a bad one becomes a ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise config_error(exc, env_names(Settings)) from None
