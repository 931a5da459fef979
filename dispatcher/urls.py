from django.urls import path

from dispatcher import apis

urlpatterns = [
    path("v1/channels/", apis.channels_view, name="api_channels"),
    path("v1/channels/<str:channel_id>/", apis.channel_detail, name="api_channel"),
    path("v1/channels/<str:channel_id>/renew/", apis.channel_renew, name="api_channel_renew"),
    path("v1/channels/<str:channel_id>/rotate-secret/", apis.channel_secret_rotate, name="api_channel_secret_rotate"),
    path("v1/channels/<str:channel_id>/previous-secret/", apis.channel_previous_secret,
         name="api_channel_previous_secret"),
]
