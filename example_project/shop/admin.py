from django.contrib import admin

from .models import Cart, CartLine, NewsletterSubscription, Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "category", "price"]
    list_filter = ["category"]
    search_fields = ["sku", "name"]


class CartLineInline(admin.TabularInline):
    model = CartLine
    extra = 0
    readonly_fields = ["product", "quantity", "unit_price", "added_at"]


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "visitor_uuid", "created_at", "checked_out_at"]
    inlines = [CartLineInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "user", "total", "currency", "placed_at"]
    readonly_fields = ["cart", "user", "email", "visitor_uuid", "total", "currency", "placed_at"]
    search_fields = ["email"]


@admin.register(NewsletterSubscription)
class NewsletterSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["email", "subscribed_at"]
