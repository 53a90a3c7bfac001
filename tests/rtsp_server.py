"""The loopback RTSP server the fault tests drive (it lives in crowdwatch.tools.rtsp_server)."""

from crowdwatch.tools.rtsp_server import MOUNT, RtspServer, free_port, probe

__all__ = ["MOUNT", "RtspServer", "free_port", "probe"]
