"""The platform's quotas on every connection's stream and bucket: defaults and ceilings.

A tenant's ``spec.stream`` may leave a quota unset (the platform's default applies) or lower
it; a value above the ceiling is the platform's to refuse (``violations``). The operator
takes them from its setting ``streamQuotas``; local mode and the receiver's
``--ensure-stream`` use ``DEFAULT_QUOTAS``.

JetStream reserves each stream's ``max_bytes`` in the server's (or the account's) store when
the stream is created, so quotas cannot be overcommitted: a connection whose quota no longer
fits is refused by the server (``StreamReady=False``, ``InsufficientStorage``) instead of
starving the others later. With the defaults a connection reserves 640 MiB (512 MiB stream,
128 MiB bucket): size the store (``max_file_store``, or the account's ``disk_storage``) for
the connections it holds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from akeneo_connector.durations import parse_duration
from akeneo_connector.spec import BucketSpec, Duration, GiB, KiB, MiB, StreamSpec

QUOTA_EXCEEDS_PLATFORM_LIMIT = "QuotaExceedsPlatformLimit"
_FIELDS = ("max_bytes", "max_msgs", "max_msg_size")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class BucketDefaults(_Model):
    # a guard entry (key, value, overhead) is about 300 bytes: some 400,000 resources
    max_bytes: int = Field(default=128 * MiB, ge=1 * MiB)
    max_msgs: int = Field(default=2_000_000, ge=1000)
    max_msg_size: int = Field(default=4 * KiB, ge=1 * KiB)  # guard entries are < 1 KiB


class BucketCeilings(_Model):
    max_bytes: int = Field(default=2 * GiB, ge=1 * MiB)
    max_msgs: int = Field(default=20_000_000, ge=1000)
    max_msg_size: int = Field(default=4 * KiB, ge=1 * KiB, le=4 * KiB)  # MAX_VALUE_BYTES


class StreamDefaults(_Model):
    """What a spec that says nothing gets."""

    max_bytes: int = Field(default=512 * MiB, ge=1 * MiB)
    max_msgs: int = Field(default=1_000_000, ge=1000)
    # above the receiver's default body (1 MiB) plus the message envelope
    max_msg_size: int = Field(default=2 * MiB, ge=4 * KiB)
    bucket: BucketDefaults = Field(default_factory=BucketDefaults)


class StreamCeilings(_Model):
    """The most a spec may ask for."""

    max_bytes: int = Field(default=8 * GiB, ge=1 * MiB)
    max_msgs: int = Field(default=10_000_000, ge=1000)
    max_msg_size: int = Field(default=8 * MiB, ge=4 * KiB)
    max_age: Duration = "720h"
    duplicate_window: Duration = "24h"
    bucket: BucketCeilings = Field(default_factory=BucketCeilings)


class StreamQuotas(_Model):
    """Operator setting ``streamQuotas``: ``{"default": {...}, "max": {...}}``, camelCase."""

    default: StreamDefaults = Field(default_factory=StreamDefaults)
    max: StreamCeilings = Field(default_factory=StreamCeilings)

    @model_validator(mode="after")
    def _defaults_within_ceilings(self) -> StreamQuotas:
        for where, default, ceiling in (
            ("", self.default, self.max),
            ("bucket.", self.default.bucket, self.max.bucket),
        ):
            for name in _FIELDS:
                if getattr(default, name) > getattr(ceiling, name):
                    field = where + to_camel(name)
                    raise ValueError(
                        f"streamQuotas.default.{field} exceeds streamQuotas.max.{field}"
                    )
        for name in ("max_age", "duplicate_window"):
            # the CRD writes the spec's default into every object that says nothing
            default = StreamSpec.model_fields[name].default
            if parse_duration(getattr(self.max, name)) < parse_duration(default):
                field = to_camel(name)
                raise ValueError(
                    f"streamQuotas.max.{field} must be at least the spec's default {default}"
                )
        return self

    def resolve(self, spec: StreamSpec) -> StreamSpec:
        """``spec`` with every unset quota set to the platform's default."""
        d = self.default
        bucket_bytes = spec.bucket.max_bytes or d.bucket.max_bytes
        bucket = BucketSpec(
            max_bytes=bucket_bytes,
            max_msgs=spec.bucket.max_msgs or d.bucket.max_msgs,
            # a default never exceeds the bytes a tenant lowered
            max_msg_size=spec.bucket.max_msg_size or min(d.bucket.max_msg_size, bucket_bytes),
        )
        max_bytes = spec.max_bytes or d.max_bytes
        return spec.model_copy(
            update={
                "max_bytes": max_bytes,
                "max_msgs": spec.max_msgs or d.max_msgs,
                "max_msg_size": spec.max_msg_size or min(d.max_msg_size, max_bytes),
                "bucket": bucket,
            }
        )

    def violations(self, spec: StreamSpec) -> list[str]:
        """What in ``spec`` exceeds a ceiling (or no longer fits with a default): messages
        naming the spec field, its value, the limit and the operator setting."""
        found: list[str] = []
        ceiling = self.max
        for where, asked, limit in (
            ("", spec, ceiling),
            ("bucket.", spec.bucket, ceiling.bucket),
        ):
            for name in _FIELDS:
                value, most = getattr(asked, name), getattr(limit, name)
                if value is not None and value > most:
                    field = where + to_camel(name)
                    found.append(
                        f"spec.stream.{field} {value} exceeds the platform limit {most} "
                        f"(operator setting streamQuotas.max.{field})"
                    )
        for name in ("max_age", "duplicate_window"):
            value, most = getattr(spec, name), getattr(ceiling, name)
            if parse_duration(value) > parse_duration(most):
                field = to_camel(name)
                found.append(
                    f"spec.stream.{field} {value} exceeds the platform limit {most} "
                    f"(operator setting streamQuotas.max.{field})"
                )
        resolved = self.resolve(spec)
        for where, model in (("", resolved), ("bucket.", resolved.bucket)):
            size, total = model.max_msg_size, model.max_bytes
            if size is not None and total is not None and size > total:
                found.append(
                    f"spec.stream.{where}maxMsgSize {size} exceeds the {where}maxBytes {total} "
                    "it would get (the platform's default, or the spec's)"
                )
        return found


DEFAULT_QUOTAS = StreamQuotas()
