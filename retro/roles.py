"""The permissions of the retro app each role gets (collected by ``loyalty.roles``)."""

from loyalty.roles import APPROVER, INTEGRATION, SUPPORT_AGENT

PERMISSIONS: dict[str, list[str]] = {
    SUPPORT_AGENT: ["retro.view_retroclaim", "retro.add_retroclaim"],
    APPROVER: ["retro.view_retroclaim", "retro.approve_retroclaim"],
    INTEGRATION: ["retro.view_retroclaim", "retro.add_retroclaim"],
}
