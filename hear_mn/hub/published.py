"""The SHA-256 that GitHub publishes for a release asset, to check a download against.

GitHub's "get a release" REST API (``GET /repos/{owner}/{repo}/releases/tags/{tag}``)
lists each asset of a release with its size and, for assets uploaded since June 2025, a
``digest`` ("sha256:<hex>") that GitHub computed itself. A file downloaded from a release
URL (``https://github.com/{owner}/{repo}/releases/download/{tag}/{name}``), or from a
mirror of it, is checked against that digest when there is one; without one (an older
asset, the API unreachable or rate-limited) the caller falls back to trusting the first
download and says so.

The API is fetched over HTTPS from ``https://api.github.com``; ``$HEAR_MN_GITHUB_API``
(or :data:`API_BASE`) names another base URL (a GitHub Enterprise server, or a test's
local imitation), and ``off`` skips the lookup (a machine that reaches only a mirror).
No torch here.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

__all__ = [
    "API_BASE",
    "DEFAULT_API",
    "ENV_API",
    "DigestUnavailableError",
    "PublishedDigest",
    "ReleaseAsset",
    "api_base",
    "published_digest",
    "release_asset",
]

logger = logging.getLogger(__name__)

DEFAULT_API = "https://api.github.com"
ENV_API = "HEAR_MN_GITHUB_API"
# The base URL used when $HEAR_MN_GITHUB_API is not set; a module setting for programs.
API_BASE = DEFAULT_API

_OFF = {"off", "none", "0", "no", "false"}
_MAX_RESPONSE = 16 << 20  # a release listing hundreds of assets is well below this
_TIMEOUT = 15.0
_RELEASE_URL = re.compile(
    r"https://github\.com/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/releases/download/"
    r"(?P<tag>[^/]+)/(?P<name>[^/?#]+)"
)
_SHA256 = re.compile(r"sha256:([0-9a-fA-F]{64})")


class DigestUnavailableError(Exception):
    """No published digest could be had; the message says why (for the log)."""


@dataclass(frozen=True)
class ReleaseAsset:
    """A file of a GitHub release: owner, repository, tag and file name."""

    owner: str
    repo: str
    tag: str
    name: str

    @property
    def api_url(self) -> str:
        """The REST API's address of the release that lists this asset."""
        quote = urllib.parse.quote
        return (
            f"{api_base()}/repos/{quote(self.owner)}/{quote(self.repo)}/releases/tags/"
            f"{quote(self.tag, safe='')}"
        )


@dataclass(frozen=True)
class PublishedDigest:
    """What a release publishes about an asset: its SHA-256 (hex), size, and where it was read."""

    sha256: str
    num_bytes: int | None
    source: str


def api_base() -> str:
    """The REST API's base URL: ``$HEAR_MN_GITHUB_API``, else :data:`API_BASE` (no final /)."""
    return (os.environ.get(ENV_API, "").strip() or API_BASE).rstrip("/")


def release_asset(url: str) -> ReleaseAsset | None:
    """The release asset that ``url`` downloads, or None when it is no GitHub release URL."""
    match = _RELEASE_URL.fullmatch(url)
    if match is None:
        return None
    unquote = urllib.parse.unquote
    return ReleaseAsset(*(unquote(match[key]) for key in ("owner", "repo", "tag", "name")))


def _release_json(url: str) -> dict:
    request = urllib.request.Request(
        url,
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "hear_mn",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            text = response.read(_MAX_RESPONSE + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DigestUnavailableError(
            f"GitHub's release API could not be read ({url}: {error})"
        ) from error
    if len(text) > _MAX_RESPONSE:
        raise DigestUnavailableError(
            f"GitHub's release API sent more than {_MAX_RESPONSE} bytes ({url})"
        )
    try:
        release = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise DigestUnavailableError(
            f"GitHub's release API sent no JSON ({url}: {error})"
        ) from error
    if not isinstance(release, dict) or not isinstance(release.get("assets"), list):
        raise DigestUnavailableError(f"GitHub's release API sent no release ({url})")
    return release


def published_digest(asset: ReleaseAsset) -> PublishedDigest:
    """The digest and size the release publishes for ``asset``.

    Raises :class:`DigestUnavailableError` (its message for the log) when the API cannot be read,
    does not list the asset, or lists it without a digest.
    """
    if api_base().lower() in _OFF:
        raise DigestUnavailableError(f"the release API is not asked ({ENV_API}={api_base()})")
    url = asset.api_url
    release = _release_json(url)
    listed = [a for a in release["assets"] if isinstance(a, dict) and a.get("name") == asset.name]
    if not listed:
        raise DigestUnavailableError(
            f"release {asset.tag} of {asset.owner}/{asset.repo} does not list {asset.name} ({url})"
        )
    entry = listed[0]
    match = _SHA256.fullmatch(str(entry.get("digest") or ""))
    if match is None:
        raise DigestUnavailableError(
            f"release {asset.tag} of {asset.owner}/{asset.repo} publishes no sha256 digest for "
            f"{asset.name} (assets uploaded before June 2025 have none)"
        )
    size = entry.get("size")
    num_bytes = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return PublishedDigest(match[1].lower(), num_bytes, url)
