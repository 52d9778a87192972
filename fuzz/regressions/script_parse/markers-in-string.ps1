$s = "
# SIG # Begin signature block
# SIG # End signature block
"
Write-Host $s
