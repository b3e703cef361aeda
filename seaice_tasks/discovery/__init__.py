"""Discovery providers: where a day's raw inputs come from, behind one interface.

Three providers fill the catalog store (``$SEAICE_CATALOG``, a folder or bucket):

* ``catalog`` (the default): the inputs are already there; nothing is fetched.
* ``cmr``: NASA's Common Metadata Repository, searched with :mod:`earthaccess` for ICESat-2
  ATL03/ATL07/ATL10 granules (short name, version, the UTC day, bounding box or polygon,
  optionally daytime only).
* ``stac``: a STAC API (Earth Search, Planetary Computer, CDSE), searched with
  :mod:`pystac_client` for Sentinel-2 L1C/L2A scenes (collection, the UTC day, bounding box,
  ``eo:cloud_cover``).

Every provider returns :class:`RemoteInput` records (and :class:`Refused` ones for what it will
not fetch); :func:`fetch_inputs` downloads them into the catalog store through fsspec, with
retries, time and size limits, checksums where the provider gives them (CMR's ``Checksum``,
STAC's ``file:checksum``) and an atomic rename, so that a partial download never becomes an
input.  The day's inventory is then scanned from the catalog store exactly as for a catalog
folder (:func:`seaice_tasks.catalog.discover_day`), so the later stages cannot tell how an input
arrived.

A search answer is hostile input (:mod:`seaice_tasks.discovery.policy`): hrefs are fetched only
over http(s) (or the catalog store's own ``s3://``), never from a local path; names become
paths only when they are one safe component of the product's own pattern, inside the store;
credentials go only to the provider's allowed hosts, over https unless loopback.

Credentials come from the environment only (the DAG copies them there from Airflow
connections): ``EARTHDATA_TOKEN`` (an Earthdata Login bearer token) or ``EARTHDATA_USERNAME`` +
``EARTHDATA_PASSWORD`` for NASA downloads, ``SEAICE_STAC_TOKEN`` for a STAC API that wants a
bearer token, and the usual AWS variables for ``s3://`` assets.  They are never logged and never
written into the inventory.
"""

from __future__ import annotations

from seaice_tasks.discovery.fetch import PARTIAL_SUFFIX, DownloadError, FetchResult, fetch_inputs, sweep_work_folders
from seaice_tasks.discovery.policy import (
    EARTHDATA_PASSWORD_ENV,
    EARTHDATA_TOKEN_ENV,
    EARTHDATA_USERNAME_ENV,
    STAC_TOKEN_ENV,
    CredentialPolicy,
    Credentials,
    HrefRefused,
    check_href,
    check_name,
    credentials_from_env,
    path_inside,
)
from seaice_tasks.discovery.providers import (
    S2_COMMON_NAMES,
    CmrProvider,
    DiscoveryError,
    Found,
    Provider,
    Refused,
    RemoteFile,
    RemoteInput,
    StacProvider,
    providers_for,
    search_all,
)

__all__ = [
    "RemoteFile", "RemoteInput", "Refused", "Found", "Provider", "CmrProvider", "StacProvider", "providers_for",
    "fetch_inputs", "FetchResult", "credentials_from_env", "search_all", "sweep_work_folders",
    "DiscoveryError", "DownloadError", "Credentials", "CredentialPolicy", "HrefRefused", "check_href", "check_name",
    "path_inside", "PARTIAL_SUFFIX", "S2_COMMON_NAMES", "EARTHDATA_TOKEN_ENV", "EARTHDATA_USERNAME_ENV",
    "EARTHDATA_PASSWORD_ENV", "STAC_TOKEN_ENV",
]
