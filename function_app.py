"""The Azure Functions entry point: build the app and register one blueprint per entry point.

Nothing else runs here: an exception at import time makes the host load zero functions, silently.
Each blueprint module imports its heavy SDKs lazily, inside the function bodies.
"""

import azure.functions as func

from functions import alert_webhook, model_registered, notify, override_api, reconcile_timer

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (model_registered.bp, reconcile_timer.bp, alert_webhook.bp, override_api.bp, notify.bp):
    app.register_functions(blueprint)
