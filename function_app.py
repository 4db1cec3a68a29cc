"""The Azure Functions entry point: build the app and register one blueprint per entry point.

Nothing else runs here: an exception at import time makes the host load zero functions, silently.
Each blueprint module imports its heavy SDKs lazily, inside the function bodies.
"""

import azure.functions as func

from functions import alert_webhook, judge_queue, model_registered, notify, override_api, reconcile_timer

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
blueprints = (model_registered.bp, reconcile_timer.bp, judge_queue.bp, alert_webhook.bp, override_api.bp, notify.bp)
for blueprint in blueprints:
    app.register_functions(blueprint)
