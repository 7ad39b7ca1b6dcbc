"""Every shipped stack renders the objects recorded in ``golden.json`` (see ``golden.py``).

A change to templates or to the renderer that changes an object fails here, named by stack
and object id, unless it is listed in ``INTENDED`` with its reason. An intended change that
no longer differs fails too, so the list only holds what really changed; once reviewed,
``python -m tests.catalog.golden write`` records the new renders and the list is emptied.
"""

from __future__ import annotations

from tests.catalog import golden

#: ``(stack, object id)`` → why that object changes on purpose ("*" for a whole stack).
INTENDED: dict[tuple[str, str], str] = {
    ('ckan/2.11.2/medium', 'v1/ConfigMap/ckan'): 'issue 19: CKAN__PLUGINS without xloader, which the ckan-base 2.11 image does not contain',
    ('ckan/2.11.2/small', 'v1/ConfigMap/ckan'): 'issue 19: CKAN__PLUGINS without xloader, which the ckan-base 2.11 image does not contain',
    ('ckan/2.11.3/medium', 'v1/ConfigMap/ckan'): 'issue 19: CKAN__PLUGINS without xloader, which the ckan-base 2.11 image does not contain',
    ('ckan/2.11.3/small', 'v1/ConfigMap/ckan'): 'issue 19: CKAN__PLUGINS without xloader, which the ckan-base 2.11 image does not contain',
    ('decidim/0.27.6/medium', 'apps/v1/Deployment/sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.27.6/medium', 'apps/v1/Deployment/web'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.27.6/medium', 'batch/v1/CronJob/daily-tasks'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.27.6/medium', 'networking.k8s.io/v1/NetworkPolicy/city-platform-allow-egress-sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.27.6/medium', 'v1/ConfigMap/decidim'): 'issue 19: QUEUE_ADAPTER/SIDEKIQ_CONCURRENCY removed (not read without --queue sidekiq); DECIDIM_HOST (read only by db:seed) and BOOTSNAP_CACHE_DIR (= the default /code/tmp/cache) removed',
    ('decidim/0.27.6/medium', 'v1/ResourceQuota/city-platform-quota'): 'issue 19: quota follows the dropped Sidekiq worker',
    ('decidim/0.27.6/small', 'apps/v1/Deployment/sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.27.6/small', 'apps/v1/Deployment/web'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.27.6/small', 'batch/v1/CronJob/daily-tasks'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.27.6/small', 'networking.k8s.io/v1/NetworkPolicy/city-platform-allow-egress-sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.27.6/small', 'v1/ConfigMap/decidim'): 'issue 19: QUEUE_ADAPTER/SIDEKIQ_CONCURRENCY removed (not read without --queue sidekiq); DECIDIM_HOST (read only by db:seed) and BOOTSNAP_CACHE_DIR (= the default /code/tmp/cache) removed',
    ('decidim/0.27.6/small', 'v1/ResourceQuota/city-platform-quota'): 'issue 19: quota follows the dropped Sidekiq worker',
    ('decidim/0.28.4/medium', 'apps/v1/Deployment/sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.28.4/medium', 'apps/v1/Deployment/web'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.28.4/medium', 'batch/v1/CronJob/daily-tasks'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.28.4/medium', 'networking.k8s.io/v1/NetworkPolicy/city-platform-allow-egress-sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.28.4/medium', 'v1/ConfigMap/decidim'): 'issue 19: QUEUE_ADAPTER/SIDEKIQ_CONCURRENCY removed (not read without --queue sidekiq); DECIDIM_HOST (read only by db:seed) and BOOTSNAP_CACHE_DIR (= the default /code/tmp/cache) removed',
    ('decidim/0.28.4/medium', 'v1/ResourceQuota/city-platform-quota'): 'issue 19: quota follows the dropped Sidekiq worker',
    ('decidim/0.28.4/small', 'apps/v1/Deployment/sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.28.4/small', 'apps/v1/Deployment/web'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.28.4/small', 'batch/v1/CronJob/daily-tasks'): 'issue 19: image decidim/decidim (Docker Hub) instead of ghcr.io/decidim/decidim',
    ('decidim/0.28.4/small', 'networking.k8s.io/v1/NetworkPolicy/city-platform-allow-egress-sidekiq'): 'issue 19: Sidekiq worker dropped, the 0.27/0.28 images have no sidekiq gem',
    ('decidim/0.28.4/small', 'v1/ConfigMap/decidim'): 'issue 19: QUEUE_ADAPTER/SIDEKIQ_CONCURRENCY removed (not read without --queue sidekiq); DECIDIM_HOST (read only by db:seed) and BOOTSNAP_CACHE_DIR (= the default /code/tmp/cache) removed',
    ('decidim/0.28.4/small', 'v1/ResourceQuota/city-platform-quota'): 'issue 19: quota follows the dropped Sidekiq worker',
    ('open-formulieren/3.3.9/large', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-formulieren/3.3.9/medium', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-formulieren/3.3.9/small', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-formulieren/3.4.2/large', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-formulieren/3.4.2/medium', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-formulieren/3.4.2/small', 'v1/ConfigMap/openforms'): 'issue 19: SDK_RELEASE=latest removed, the image bakes the SDK of .sdk-release; ORGANISATION_NAME removed (read by neither 3.3.9 nor 3.4.2)',
    ('open-zaak/1.14.0/large', '*'): 'issue 19: version 1.14.0 replaces the non-existent 1.14.2',
    ('open-zaak/1.14.0/medium', '*'): 'issue 19: version 1.14.0 replaces the non-existent 1.14.2',
    ('open-zaak/1.14.0/small', '*'): 'issue 19: version 1.14.0 replaces the non-existent 1.14.2',
    ('open-zaak/1.14.2/large', '*'): 'issue 19: openzaak/open-zaak:1.14.2 never existed, replaced by 1.14.0',
    ('open-zaak/1.14.2/medium', '*'): 'issue 19: openzaak/open-zaak:1.14.2 never existed, replaced by 1.14.0',
    ('open-zaak/1.14.2/small', '*'): 'issue 19: openzaak/open-zaak:1.14.2 never existed, replaced by 1.14.0',
    ('open-zaak/1.17.0/large', 'v1/ConfigMap/openzaak'): 'issue 19: OPENZAAK_ORGANIZATION (the name 1.17.0 reads) instead of ORGANISATION_NAME; SITE_DOMAIN removed (read neither by Open Zaak nor open-api-framework 0.9.2)',
    ('open-zaak/1.17.0/medium', 'v1/ConfigMap/openzaak'): 'issue 19: OPENZAAK_ORGANIZATION (the name 1.17.0 reads) instead of ORGANISATION_NAME; SITE_DOMAIN removed (read neither by Open Zaak nor open-api-framework 0.9.2)',
    ('open-zaak/1.17.0/small', 'v1/ConfigMap/openzaak'): 'issue 19: OPENZAAK_ORGANIZATION (the name 1.17.0 reads) instead of ORGANISATION_NAME; SITE_DOMAIN removed (read neither by Open Zaak nor open-api-framework 0.9.2)',
    ('open-zaak/1.17.0/large', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('open-zaak/1.17.0/medium', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('open-zaak/1.17.0/small', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.10/large', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/large', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/large', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.10/large', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/large', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.10/medium', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/medium', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/medium', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.10/medium', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/medium', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.10/small', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/small', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/small', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.10/small', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.10/small', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.17/large', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/large', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/large', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.17/large', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/large', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.17/medium', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/medium', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/medium', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.17/medium', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/medium', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
    ('signalen/2.37.17/small', 'apps/v1/Deployment/backend'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/small', 'apps/v1/Deployment/beat'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/small', 'apps/v1/Deployment/frontend'): 'issue 19: frontend runs as uid 1001 (appuser owns index.html, manifest.json, nginx.pid)',
    ('signalen/2.37.17/small', 'apps/v1/Deployment/worker'): 'issue 19: backend uid 1000, media on /app/media, static maps to /app, probe Host localhost',
    ('signalen/2.37.17/small', 'apps/v1/StatefulSet/postgres'): 'issue 19: postgis/postgis:16-3.5 (16-3.4 frozen upstream)',
}


def test_every_stack_renders_the_golden_objects() -> None:
    found = {
        (key, oid): what
        for key, oid, what in golden.changes(golden.recorded(), golden.digests(golden.render_all()))
    }
    unexpected = {k: v for k, v in found.items() if k not in INTENDED}
    assert not unexpected, (
        f"{len(unexpected)} object(s) render differently from golden.json "
        "(see them with `python -m tests.catalog.golden diff HEAD`): "
        + "; ".join(f"{key} {oid}: {what}" for (key, oid), what in sorted(unexpected.items())[:20])
    )
    stale = sorted(set(INTENDED) - set(found))
    assert not stale, f"listed as intended but rendered as recorded: {stale}"


def test_the_comparison_names_each_changed_object() -> None:
    before = {"a/1/small": {"v1/Service/web": "sha256:1", "v1/Secret/db": "sha256:2"}}
    after = {
        "a/1/small": {"v1/Service/web": "sha256:9", "v1/ConfigMap/x": "sha256:3"},
        "b/1/small": {},
    }
    assert list(golden.changes(before, after)) == [
        ("a/1/small", "v1/ConfigMap/x", "added"),
        ("a/1/small", "v1/Secret/db", "removed"),
        ("a/1/small", "v1/Service/web", "changed"),
        ("b/1/small", "*", "new stack"),
    ]
