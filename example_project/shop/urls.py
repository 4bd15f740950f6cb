from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("products/<str:sku>/", views.product_detail, name="product"),
    path("search/", views.search, name="search"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/<str:sku>/", views.add_to_cart, name="add_to_cart"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("signup/", views.signup, name="signup"),
    path("newsletter/", views.newsletter, name="newsletter"),
    path("products/<str:sku>/share/", views.share_product, name="share"),
]
