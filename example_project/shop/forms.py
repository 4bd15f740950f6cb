from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=99, initial=1)


class CheckoutForm(forms.Form):
    email = forms.EmailField(help_text="We send the order confirmation here.")


class OrderEmailForm(forms.Form):
    email = forms.EmailField(label="Send the confirmation to")


class NewsletterForm(forms.Form):
    email = forms.EmailField(label="Newsletter")


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
