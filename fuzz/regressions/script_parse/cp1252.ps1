param([string]$Name = 'x')
Write-Host "Grüße $Name €"
$s = @'
# SIG # Begin signature block
'@
