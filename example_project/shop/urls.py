from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("products/<str:sku>/", views.product_detail, name="product"),
    path("products/<str:sku>/favourite/", views.add_to_favourites, name="favourite"),
    path("search/", views.search, name="search"),
    path("search/suggest/", views.search_suggestions, name="suggest"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/<str:sku>/", views.add_to_cart, name="add_to_cart"),
    path("cart/remove/<int:line_id>/", views.remove_from_cart, name="remove_from_cart"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("orders/<int:pk>/email/", views.change_order_email, name="order_email"),
    path("orders/<int:pk>/cancel/", views.cancel_order, name="cancel_order"),
    path("signup/", views.signup, name="signup"),
    path("newsletter/", views.newsletter, name="newsletter"),
    path("products/<str:sku>/share/", views.share_product, name="share"),
]
