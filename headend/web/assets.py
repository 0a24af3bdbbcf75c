"""Static files: our own (headend/web/static) and the front-end packages
installed from npm (tools/bootstrap.sh), served by the head-end itself so a
site with no internet has them: htmx, ECharts and Swagger UI (ReDoc: web/docs.py)."""
import os

from fastapi.staticfiles import StaticFiles

HERE = os.path.dirname(os.path.abspath(__file__))

# URL prefix -> folder inside node_modules
VENDOR = {
    "htmx": "htmx.org/dist",
    "echarts": "echarts/dist",
    "swagger-ui": "swagger-ui-dist",
}


def mount(app, node_modules):
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")
    for prefix, sub in VENDOR.items():
        path = os.path.join(node_modules, sub)
        if os.path.isdir(path):
            app.mount("/vendor/" + prefix, StaticFiles(directory=path), name="vendor-" + prefix)
        else:
            import logging
            logging.getLogger("headend.web").warning(
                "front-end package missing (%s): run `bash tools/bootstrap.sh`", path)
