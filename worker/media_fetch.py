"""The media job: keep an agent reply's attachments now, before its pacing slot comes."""

from __future__ import annotations

from app.jobs import MediaJob
from app.media_service import keep_reply_media
from db.outbox import Job
from worker.jobs import Done, JobContext, Outcome


def handle_fetch_media(ctx: JobContext, job: Job) -> Outcome:
    """Fetch, check and keep the attachments (kind ``fetch_media``); the reply's send job
    runs after it and sends them, or fails the reply with media_rejected."""
    keep_reply_media(ctx.services, MediaJob.from_payload(job.payload))
    return Done()
